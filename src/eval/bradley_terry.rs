//! Bradley–Terry strengths from pairwise votes, with bootstrap intervals.
//!
//! Blind A/B votes are the most trustworthy human signal, but they only say "this one was
//! better than that one". The Bradley–Terry model turns such outcomes into one strength per
//! player: P(i beats j) = p_i / (p_i + p_j). It is fitted with the MM algorithm of Hunter
//! (2004, "MM algorithms for generalized Bradley–Terry models", Ann. Statist. 32(1)),
//! the classic iteration of Zermelo (1929):
//!
//! p_i ← W_i / Σ_j n_ij / (p_i + p_j)
//!
//! A tie counts as half a win for each side. Players who never lost (or never won) have no
//! finite maximum-likelihood strength, so a weak prior adds `prior` virtual wins and `prior`
//! virtual losses for each player against a fixed reference of strength 1; it pulls small
//! samples towards the middle and makes the fit converge for every data set.
//!
//! Strengths are reported as centred log-strengths θ (mean 0), so θ_i − θ_j is the log-odds of
//! i beating j. Intervals come from a percentile bootstrap over votes with a fixed-seed RNG,
//! so the same session always shows the same numbers.

use rand::{Rng, SeedableRng};

/// What happened in one comparison of players `a` and `b`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    AWins,
    BWins,
    Tie,
}

/// One comparison between two players (indices into the player list).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Comparison {
    pub a: usize,
    pub b: usize,
    pub outcome: Outcome,
}

/// Fitted strengths.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Fit {
    /// Centred log-strengths (mean 0).
    pub theta: Vec<f64>,
    pub iterations: usize,
    pub converged: bool,
}

#[cfg(test)]
impl Fit {
    /// Probability that `i` beats `j` under the fit.
    pub fn win_probability(&self, i: usize, j: usize) -> f64 {
        win_probability(self.theta[i], self.theta[j])
    }
}

/// P(i beats j) for log-strengths `ti`, `tj`.
pub(crate) fn win_probability(ti: f64, tj: f64) -> f64 {
    1.0 / (1.0 + (tj - ti).exp())
}

/// The default prior: half a virtual win and half a virtual loss per player.
pub(crate) const DEFAULT_PRIOR: f64 = 0.5;

const MAX_ITERATIONS: usize = 10_000;
const TOLERANCE: f64 = 1e-10;

/// Fit `players` strengths to `comparisons` with `prior` virtual games each way (0 for the
/// plain maximum-likelihood fit, which exists only when the comparison graph is strongly
/// connected).
pub(crate) fn fit(players: usize, comparisons: &[Comparison], prior: f64) -> Fit {
    let mut wins = vec![0.0f64; players];
    // games[i][j]: comparisons between i and j (ties included).
    let mut games = vec![vec![0.0f64; players]; players];
    for c in comparisons {
        if c.a == c.b || c.a >= players || c.b >= players {
            continue;
        }
        games[c.a][c.b] += 1.0;
        games[c.b][c.a] += 1.0;
        match c.outcome {
            Outcome::AWins => wins[c.a] += 1.0,
            Outcome::BWins => wins[c.b] += 1.0,
            Outcome::Tie => {
                wins[c.a] += 0.5;
                wins[c.b] += 0.5;
            }
        }
    }
    let mut p = vec![1.0f64; players];
    let mut iterations = 0;
    let mut converged = players == 0;
    while iterations < MAX_ITERATIONS && !converged {
        iterations += 1;
        let mut next = p.clone();
        for i in 0..players {
            let mut denom = 2.0 * prior / (p[i] + 1.0);
            for j in 0..players {
                if games[i][j] > 0.0 {
                    denom += games[i][j] / (p[i] + p[j]);
                }
            }
            let numer = wins[i] + prior;
            if denom > 0.0 && numer > 0.0 {
                next[i] = numer / denom;
            }
        }
        if prior == 0.0 {
            // Only ratios are identified: keep the geometric mean at 1.
            let mean_log = next.iter().map(|x| x.ln()).sum::<f64>() / players as f64;
            for x in &mut next {
                *x /= mean_log.exp();
            }
        }
        let change = p
            .iter()
            .zip(&next)
            .map(|(a, b)| (a.ln() - b.ln()).abs())
            .fold(0.0, f64::max);
        p = next;
        converged = change < TOLERANCE;
    }
    let logs: Vec<f64> = p.iter().map(|x| x.ln()).collect();
    let mean = if players == 0 {
        0.0
    } else {
        logs.iter().sum::<f64>() / players as f64
    };
    Fit {
        theta: logs.iter().map(|l| l - mean).collect(),
        iterations,
        converged,
    }
}

/// A point estimate with a 95% interval.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Interval {
    pub estimate: f64,
    pub low: f64,
    pub high: f64,
}

impl Interval {
    pub fn width(&self) -> f64 {
        self.high - self.low
    }

    pub fn overlaps(&self, other: &Interval) -> bool {
        self.low <= other.high && other.low <= self.high
    }
}

/// The fit plus percentile-bootstrap 95% intervals for each θ: `rounds` resamples of the
/// comparisons with replacement, RNG seeded with `seed`.
pub(crate) fn fit_with_intervals(
    players: usize,
    comparisons: &[Comparison],
    prior: f64,
    rounds: usize,
    seed: u64,
) -> (Fit, Vec<Interval>) {
    let point = fit(players, comparisons, prior);
    let mut samples: Vec<Vec<f64>> = vec![Vec::with_capacity(rounds); players];
    if !comparisons.is_empty() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        let mut resample = Vec::with_capacity(comparisons.len());
        for _ in 0..rounds {
            resample.clear();
            for _ in 0..comparisons.len() {
                resample.push(comparisons[rng.random_range(0..comparisons.len())]);
            }
            let f = fit(players, &resample, prior);
            for (i, t) in f.theta.iter().enumerate() {
                samples[i].push(*t);
            }
        }
    }
    let intervals = samples
        .iter_mut()
        .enumerate()
        .map(|(i, s)| {
            s.sort_by(f64::total_cmp);
            let estimate = point.theta[i];
            if s.is_empty() {
                Interval {
                    estimate,
                    low: estimate,
                    high: estimate,
                }
            } else {
                Interval {
                    estimate,
                    low: percentile(s, 0.025),
                    high: percentile(s, 0.975),
                }
            }
        })
        .collect();
    (point, intervals)
}

/// Linear-interpolated percentile of sorted data.
fn percentile(sorted: &[f64], q: f64) -> f64 {
    let pos = q * (sorted.len() - 1) as f64;
    let lo = pos.floor() as usize;
    let hi = pos.ceil() as usize;
    let frac = pos - lo as f64;
    sorted[lo] * (1.0 - frac) + sorted[hi] * frac
}

#[cfg(test)]
mod tests {
    use super::*;

    fn games(list: &[(usize, usize, usize)]) -> Vec<Comparison> {
        // (winner, loser, times)
        let mut out = Vec::new();
        for &(w, l, n) in list {
            for _ in 0..n {
                out.push(Comparison {
                    a: w,
                    b: l,
                    outcome: Outcome::AWins,
                });
            }
        }
        out
    }

    #[test]
    fn two_players_odds_equal_the_win_ratio() {
        // A beats B twice, B beats A once: the MLE has p_A / p_B = 2.
        let f = fit(2, &games(&[(0, 1, 2), (1, 0, 1)]), 0.0);
        assert!(f.converged);
        assert!((f.theta[0] - f.theta[1] - 2f64.ln()).abs() < 1e-8, "{f:?}");
        assert!((f.win_probability(0, 1) - 2.0 / 3.0).abs() < 1e-8);
    }

    #[test]
    fn ties_count_as_half_a_win_each() {
        // A: one win and one tie (1.5 wins), B: one tie (0.5): ratio 3.
        let mut c = games(&[(0, 1, 1)]);
        c.push(Comparison {
            a: 1,
            b: 0,
            outcome: Outcome::Tie,
        });
        let f = fit(2, &c, 0.0);
        assert!((f.theta[0] - f.theta[1] - 3f64.ln()).abs() < 1e-8, "{f:?}");
    }

    #[test]
    fn a_balanced_cycle_gives_equal_strengths() {
        let f = fit(3, &games(&[(0, 1, 1), (1, 2, 1), (2, 0, 1)]), 0.0);
        for t in &f.theta {
            assert!(t.abs() < 1e-9, "{f:?}");
        }
    }

    #[test]
    fn three_players_hand_computed() {
        // A–B: 2–1, B–C: 2–1, A–C: 4–1. By hand, p = (4, 2, 1) solves the likelihood
        // equations W_i = Σ_j n_ij p_i / (p_i + p_j): A: 3·4/6 + 5·4/5 = 2 + 4 = 6 wins,
        // B: 3·2/6 + 3·2/3 = 1 + 2 = 3, C: 5·1/5 + 3·1/3 = 1 + 1 = 2. So θ steps by ln 2.
        let c = games(&[
            (0, 1, 2),
            (1, 0, 1),
            (1, 2, 2),
            (2, 1, 1),
            (0, 2, 4),
            (2, 0, 1),
        ]);
        let f = fit(3, &c, 0.0);
        assert!(f.converged);
        let ln2 = 2f64.ln();
        assert!((f.theta[0] - ln2).abs() < 1e-8, "{f:?}");
        assert!(f.theta[1].abs() < 1e-8, "{f:?}");
        assert!((f.theta[2] + ln2).abs() < 1e-8, "{f:?}");
    }

    /// The worked example of the iterative procedure in Wikipedia's "Bradley–Terry model"
    /// article (after Hunter 2004 / Zermelo 1929): four teams, A–D, 22 games, wins table
    /// (row beat column) A: B 2, D 1; B: A 3, C 5; C: B 3, D 1; D: A 4, C 3. The article's
    /// converged strengths, scaled to geometric mean 1, are p = (0.640, 1.043, 0.660, 2.270).
    #[test]
    fn published_four_team_example() {
        let c = games(&[
            (0, 1, 2),
            (0, 3, 1),
            (1, 0, 3),
            (1, 2, 5),
            (2, 1, 3),
            (2, 3, 1),
            (3, 0, 4),
            (3, 2, 3),
        ]);
        let f = fit(4, &c, 0.0);
        assert!(f.converged);
        let p: Vec<f64> = f.theta.iter().map(|t| t.exp()).collect();
        for (got, want) in p.iter().zip([0.640, 1.043, 0.660, 2.270]) {
            assert!((got - want).abs() < 0.0015, "{p:?}");
        }
    }

    #[test]
    fn the_prior_makes_an_unbeaten_player_converge() {
        let c = games(&[(0, 1, 5), (1, 2, 3)]);
        let plain = fit(3, &c, 0.0);
        assert!(!plain.converged || plain.theta[0] > 15.0, "{plain:?}");
        let f = fit(3, &c, DEFAULT_PRIOR);
        assert!(f.converged, "{f:?}");
        assert!(f.theta.iter().all(|t| t.is_finite()));
        assert!(f.theta[0] > f.theta[1] && f.theta[1] > f.theta[2]);
        assert!(f.theta[0] < 5.0, "{f:?}");
    }

    #[test]
    fn no_votes_means_all_equal() {
        let f = fit(3, &[], DEFAULT_PRIOR);
        assert_eq!(f.theta, vec![0.0; 3]);
        let (_, iv) = fit_with_intervals(3, &[], DEFAULT_PRIOR, 100, 1);
        assert!(iv.iter().all(|i| i.width() == 0.0));
    }

    #[test]
    fn bootstrap_is_reproducible_and_intervals_shrink_as_votes_grow() {
        // The same 2:1 preference with 3x, 10x and 30x as many votes.
        let widths: Vec<f64> = [3, 10, 30]
            .iter()
            .map(|&k| {
                let c = games(&[(0, 1, 2 * k), (1, 0, k)]);
                let (f, iv) = fit_with_intervals(2, &c, DEFAULT_PRIOR, 400, 7);
                assert!(iv[0].low <= f.theta[0] && f.theta[0] <= iv[0].high);
                iv[0].width()
            })
            .collect();
        assert!(widths[0] > widths[1] && widths[1] > widths[2], "{widths:?}");
        let c = games(&[(0, 1, 4), (1, 0, 3)]);
        assert_eq!(
            fit_with_intervals(2, &c, DEFAULT_PRIOR, 200, 42).1,
            fit_with_intervals(2, &c, DEFAULT_PRIOR, 200, 42).1
        );
    }
}
