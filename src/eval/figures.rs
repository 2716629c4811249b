//! The figures the charts draw, computed once for the terminal and the exports alike: how
//! many answers of each variant got 1…5 stars, and the speed of each model (time to first
//! token, tokens per second, medians over its answers).

use crate::state::session::{NodeKind, Session};

/// Star counts of one variant: `counts[k]` answers' ratings gave `k + 1` stars.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct StarsHistogram {
    pub name: String,
    pub counts: [usize; 5],
}

/// Per variant (in order of first answer), every star rating its answers got.
pub(crate) fn stars_histograms(s: &Session) -> Vec<StarsHistogram> {
    let mut out: Vec<StarsHistogram> = Vec::new();
    let mut of_node: std::collections::HashMap<u64, usize> = Default::default();
    for n in s
        .nodes
        .iter()
        .filter(|n| matches!(n.kind, NodeKind::Answer | NodeKind::Rewrite))
    {
        let i = match out.iter().position(|h| h.name == n.variant) {
            Some(i) => i,
            None => {
                out.push(StarsHistogram {
                    name: n.variant.clone(),
                    counts: [0; 5],
                });
                out.len() - 1
            }
        };
        of_node.insert(n.id, i);
    }
    for r in &s.ratings {
        if let (Some(st), Some(&i)) = (r.stars, of_node.get(&r.node)) {
            if (1..=5).contains(&st) {
                out[i].counts[usize::from(st - 1)] += 1;
            }
        }
    }
    out
}

/// One model's speed over its finished answers.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ModelSpeed {
    pub model: String,
    pub answers: usize,
    /// Median time to first token, ms.
    pub ttft_ms: Option<f64>,
    /// Median decode rate, tokens per second.
    pub tok_per_s: Option<f64>,
}

fn median(mut xs: Vec<f64>) -> Option<f64> {
    if xs.is_empty() {
        return None;
    }
    xs.sort_by(f64::total_cmp);
    let m = xs.len() / 2;
    Some(if xs.len() % 2 == 1 {
        xs[m]
    } else {
        (xs[m - 1] + xs[m]) / 2.0
    })
}

/// Per model (in order of first answer), medians of ttft and tokens/s over its answers.
pub(crate) fn model_speeds(s: &Session) -> Vec<ModelSpeed> {
    let mut models: Vec<(&str, Vec<f64>, Vec<f64>, usize)> = Vec::new();
    for n in s.nodes.iter().filter(|n| n.kind == NodeKind::Answer) {
        let i = match models.iter().position(|m| m.0 == n.model) {
            Some(i) => i,
            None => {
                models.push((&n.model, Vec::new(), Vec::new(), 0));
                models.len() - 1
            }
        };
        let m = &mut models[i];
        m.3 += 1;
        if let Some(t) = n.ttft_ms {
            m.1.push(t as f64);
        }
        if let Some(r) = n.tok_per_s.filter(|r| r.is_finite()) {
            m.2.push(r);
        }
    }
    models
        .into_iter()
        .map(|(model, ttft, rate, answers)| ModelSpeed {
            model: model.to_string(),
            answers,
            ttft_ms: median(ttft),
            tok_per_s: median(rate),
        })
        .collect()
}

/// One sampled cell in words: `5 samples, 60% agree; passed 3/5 (60% [23, 88] 95% Wilson);
/// answers 3× "Paris", 2× "Lyon"; checks 3× ✓, 2× ✗`. Answer texts are shortened and made
/// visible (they are a model's output).
pub(crate) fn describe_stability(st: &crate::eval::consistency::Stability) -> String {
    use crate::sanitize::one_line;
    let pass = match st
        .pass
        .and_then(|(h, n)| crate::eval::leaderboard::share(h, n))
    {
        Some(p) => format!(
            "passed {}/{} ({:.0}% [{:.0}, {:.0}] 95% Wilson)",
            p.hits,
            p.n,
            100.0 * p.interval.estimate,
            100.0 * p.interval.low,
            100.0 * p.interval.high
        ),
        None => "no checks".into(),
    };
    let clusters: Vec<String> = st
        .by_text
        .iter()
        .map(|c| format!("{}× {:?}", c.members.len(), one_line(&c.key, 30)))
        .collect();
    let by_checks: Vec<String> = st
        .by_checks
        .iter()
        .map(|c| format!("{}× {}", c.members.len(), c.key))
        .collect();
    format!(
        "{} samples, {:.0}% agree; {pass}; answers {}; checks {}",
        st.samples,
        100.0 * st.agreement,
        clusters.join(", "),
        by_checks.join(", ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histograms_and_speeds_from_a_session() {
        let mut s = crate::store::tests::sample_session();
        let h = stars_histograms(&s);
        assert_eq!(h.len(), 1);
        assert_eq!(h[0].name, "plain");
        assert_eq!(h[0].counts, [0, 0, 0, 1, 0]);
        let mut n = s.nodes[0].clone();
        n.id = 9;
        n.model = "other".into();
        n.ttft_ms = Some(100);
        n.tok_per_s = Some(10.0);
        s.nodes.push(n.clone());
        n.id = 10;
        n.ttft_ms = Some(300);
        n.tok_per_s = None;
        s.nodes.push(n);
        let sp = model_speeds(&s);
        assert_eq!(sp.len(), 2);
        assert_eq!(
            (sp[0].model.as_str(), sp[0].ttft_ms),
            ("smollm2", Some(80.0))
        );
        assert_eq!(sp[1].answers, 2);
        assert_eq!(sp[1].ttft_ms, Some(200.0));
        assert_eq!(sp[1].tok_per_s, Some(10.0));
    }
}
