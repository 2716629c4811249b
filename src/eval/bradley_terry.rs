//! Bradley–Terry strengths from pairwise votes, with posterior intervals.
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
//! i beating j. Intervals are Laplace (normal) approximations of the posterior under that
//! prior ([`posterior`]): they carry the prior's uncertainty, so a handful of
//! unanimous votes gives a wide interval, where a bootstrap over identical votes gave a
//! zero-width one.

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
    let (p, iterations, converged) = fit_core(players, comparisons, prior);
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

/// The MM iteration: strengths on the reference's scale (reference 1), iterations, whether
/// it converged.
fn fit_core(players: usize, comparisons: &[Comparison], prior: f64) -> (Vec<f64>, usize, bool) {
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
    (p, iterations, converged)
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

    /// The two intervals lie apart, so the entries can be told apart at this level. An
    /// interval of zero width says nothing was measured, not that the value is known
    /// exactly, so it never separates.
    pub fn separated_from(&self, other: &Interval) -> bool {
        self.width() > 0.0 && other.width() > 0.0 && !self.overlaps(other)
    }
}

/// z for a two-sided 95% normal interval.
const Z_975: f64 = 1.959_963_985;

/// The fit and 95% intervals for each centred θ from the Laplace approximation of the
/// posterior: the prior's virtual games are part of the log-posterior, so its uncertainty is
/// in the curvature too. The covariance of the uncentred log-strengths is the inverse of
/// the negative Hessian at the fit,
///
/// H_ii = Σ_j n_ij q_ij (1 − q_ij) + 2·prior·σ(θ_i)(1 − σ(θ_i)), H_ij = −n_ij q_ij (1 − q_ij),
///
/// with q_ij = P(i beats j) (a tie is half a win and half a loss, so it adds the same
/// curvature as one game); the centred θ_i is the contrast e_i − 1/n, whose variance is
/// cᵀ H⁻¹ c (for a difference θ_i − θ_j, c = e_i − e_j). Unlike a bootstrap over votes, five identical votes do not collapse the
/// interval: the data say little and the interval says so. Deterministic, and one fit
/// instead of hundreds.
///
/// Without a prior (0) nothing ties the scale to the reference, the Hessian is singular and
/// the intervals are unbounded.
pub(crate) fn posterior(players: usize, comparisons: &[Comparison], prior: f64) -> Posterior {
    let fit = fit(players, comparisons, prior);
    if comparisons.is_empty() {
        let intervals = fit
            .theta
            .iter()
            .map(|&t| Interval {
                estimate: t,
                low: t,
                high: t,
            })
            .collect();
        return Posterior {
            fit,
            intervals,
            cov: None,
            measured: false,
        };
    }
    // Uncentred log-strengths: the reference sits at θ = 0 on this scale.
    let raw = fit_raw(players, comparisons, prior);
    let mut h = vec![vec![0.0f64; players]; players];
    for (i, &t) in raw.iter().enumerate() {
        let s = win_probability(t, 0.0);
        h[i][i] += 2.0 * prior * s * (1.0 - s);
    }
    for c in comparisons {
        if c.a == c.b || c.a >= players || c.b >= players {
            continue;
        }
        let q = win_probability(raw[c.a], raw[c.b]);
        let w = q * (1.0 - q);
        h[c.a][c.a] += w;
        h[c.b][c.b] += w;
        h[c.a][c.b] -= w;
        h[c.b][c.a] -= w;
    }
    let cov = invert_spd(&h);
    let n = players as f64;
    let intervals = fit
        .theta
        .iter()
        .enumerate()
        .map(|(i, &estimate)| {
            // c = e_i − 1/n.
            let c: Vec<f64> = (0..players)
                .map(|a| f64::from(u8::from(a == i)) - 1.0 / n)
                .collect();
            let half = cov
                .as_ref()
                .map_or(f64::INFINITY, |cov| Z_975 * quad(cov, &c).sqrt());
            Interval {
                estimate,
                low: estimate - half,
                high: estimate + half,
            }
        })
        .collect();
    Posterior {
        fit,
        intervals,
        cov,
        measured: true,
    }
}

/// cᵀ Σ c, never negative.
fn quad(cov: &[Vec<f64>], c: &[f64]) -> f64 {
    let mut var = 0.0;
    for (a, row) in cov.iter().enumerate() {
        for (b, &x) in row.iter().enumerate() {
            var += c[a] * x * c[b];
        }
    }
    var.max(0.0)
}

/// The fit, its 95% intervals, and what is needed to compare two players.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Posterior {
    pub fit: Fit,
    /// 95% interval of each centred θ.
    pub intervals: Vec<Interval>,
    /// Covariance of the uncentred log-strengths (`None`: singular, or no votes).
    cov: Option<Vec<Vec<f64>>>,
    /// There were comparisons to fit.
    measured: bool,
}

impl Posterior {
    /// θ_i − θ_j with its 95% interval (the covariance of the two is taken into account,
    /// which the two separate intervals can't show).
    pub fn difference(&self, i: usize, j: usize) -> Interval {
        let estimate = self.fit.theta[i] - self.fit.theta[j];
        let half = if !self.measured {
            0.0
        } else if let Some(cov) = &self.cov {
            let c: Vec<f64> = (0..cov.len())
                .map(|a| f64::from(u8::from(a == i)) - f64::from(u8::from(a == j)))
                .collect();
            Z_975 * quad(cov, &c).sqrt()
        } else {
            f64::INFINITY
        };
        Interval {
            estimate,
            low: estimate - half,
            high: estimate + half,
        }
    }

    /// `i` and `j` can be told apart at 95%: the interval of θ_i − θ_j leaves out 0. With
    /// nothing measured (a zero-width interval) they never can.
    pub fn separated(&self, i: usize, j: usize) -> bool {
        let d = self.difference(i, j);
        d.width() > 0.0 && (d.low > 0.0 || d.high < 0.0)
    }
}

/// The fitted log-strengths on the reference's scale (reference at 0), not centred.
fn fit_raw(players: usize, comparisons: &[Comparison], prior: f64) -> Vec<f64> {
    let (p, _, _) = fit_core(players, comparisons, prior);
    p.iter().map(|p| p.ln()).collect()
}

/// Inverse of a symmetric positive-definite matrix by Cholesky factorisation, or `None`
/// when it is not positive definite (a player with no information).
// Triangular solves read clearest with the indices of the textbook formulas.
#[allow(clippy::needless_range_loop)]
fn invert_spd(a: &[Vec<f64>]) -> Option<Vec<Vec<f64>>> {
    let n = a.len();
    // a = L Lᵀ
    let mut l = vec![vec![0.0f64; n]; n];
    for i in 0..n {
        for j in 0..=i {
            let mut sum = a[i][j];
            for k in 0..j {
                sum -= l[i][k] * l[j][k];
            }
            if i == j {
                if sum <= 1e-12 {
                    return None;
                }
                l[i][i] = sum.sqrt();
            } else {
                l[i][j] = sum / l[j][j];
            }
        }
    }
    // Solve L Lᵀ x = e_k for each column k.
    let mut inv = vec![vec![0.0f64; n]; n];
    for k in 0..n {
        let mut y = vec![0.0f64; n];
        for i in 0..n {
            let mut sum = if i == k { 1.0 } else { 0.0 };
            for j in 0..i {
                sum -= l[i][j] * y[j];
            }
            y[i] = sum / l[i][i];
        }
        let mut x = vec![0.0f64; n];
        for i in (0..n).rev() {
            let mut sum = y[i];
            for j in i + 1..n {
                sum -= l[j][i] * x[j];
            }
            x[i] = sum / l[i][i];
        }
        for i in 0..n {
            inv[i][k] = x[i];
        }
    }
    Some(inv)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

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
        let p = posterior(3, &[], DEFAULT_PRIOR);
        let iv = &p.intervals;
        assert!(!p.separated(0, 1));
        assert!(iv.iter().all(|i| i.width() == 0.0));
        // Nothing measured is not "known exactly": zero-width intervals never separate.
        assert!(!iv[0].separated_from(&Interval {
            estimate: 5.0,
            low: 5.0,
            high: 5.0
        }));
    }

    #[test]
    fn intervals_shrink_as_votes_grow_and_are_reproducible() {
        // The same 2:1 preference with 3x, 10x and 30x as many votes.
        let widths: Vec<f64> = [3, 10, 30]
            .iter()
            .map(|&k| {
                let c = games(&[(0, 1, 2 * k), (1, 0, k)]);
                let Posterior {
                    fit: f,
                    intervals: iv,
                    ..
                } = posterior(2, &c, DEFAULT_PRIOR);
                assert!(iv[0].low <= f.theta[0] && f.theta[0] <= iv[0].high);
                iv[0].width()
            })
            .collect();
        assert!(widths[0] > widths[1] && widths[1] > widths[2], "{widths:?}");
        // Width shrinks like 1/sqrt(n): 10x the votes, about a third of the width.
        assert!(
            (widths[1] / widths[2] - 3f64.sqrt()).abs() < 0.15,
            "{widths:?}"
        );
        let c = games(&[(0, 1, 4), (1, 0, 3)]);
        assert_eq!(
            posterior(2, &c, DEFAULT_PRIOR),
            posterior(2, &c, DEFAULT_PRIOR)
        );
    }

    /// Five votes of "A beats B" (issue 19): an exact binomial test gives p = 2·0.5⁵ = 0.06,
    /// so at 95% the two must not be told apart. Figures from a hand computation (Python,
    /// MM fit with the same prior, then the Hessian inverted with numpy):
    /// θ_A = +1.378 [−0.252, +3.009], θ_B mirrored.
    #[test]
    fn five_unanimous_votes_do_not_separate_two_players() {
        let c = games(&[(0, 1, 5)]);
        let Posterior {
            fit: f,
            intervals: iv,
            ..
        } = posterior(2, &c, DEFAULT_PRIOR);
        assert!((f.theta[0] - 1.3781).abs() < 1e-3, "{f:?}");
        assert!((iv[0].low + 0.2524).abs() < 1e-3, "{iv:?}");
        assert!((iv[0].high - 3.0086).abs() < 1e-3, "{iv:?}");
        assert!((iv[1].low + 3.0086).abs() < 1e-3, "{iv:?}");
        assert!(iv[0].width() > 1.0);
        assert!(!iv[0].separated_from(&iv[1]), "{iv:?}");
        let p = posterior(2, &c, DEFAULT_PRIOR);
        assert!(!p.separated(0, 1));
        // Two players: the difference's interval is twice a centred one.
        let d = p.difference(0, 1);
        assert!((d.width() - 2.0 * iv[0].width()).abs() < 1e-9, "{d:?}");
    }

    /// 200 votes with a clear winner (140–60): Python gives θ_A = +0.422 [+0.271, +0.573].
    #[test]
    fn two_hundred_votes_with_a_clear_winner_separate() {
        let c = games(&[(0, 1, 140), (1, 0, 60)]);
        let Posterior {
            fit: f,
            intervals: iv,
            ..
        } = posterior(2, &c, DEFAULT_PRIOR);
        assert!((f.theta[0] - 0.4224).abs() < 1e-3, "{f:?}");
        assert!((iv[0].low - 0.2715).abs() < 1e-3, "{iv:?}");
        assert!((iv[0].high - 0.5733).abs() < 1e-3, "{iv:?}");
        assert!(iv[0].separated_from(&iv[1]), "{iv:?}");
        assert!(posterior(2, &c, DEFAULT_PRIOR).separated(0, 1));
    }

    /// Coverage: over many random vote sets drawn from known strengths, the true centred θ
    /// falls inside its 95% interval at about the nominal rate (not 100%: the intervals
    /// are not padded; not far below: they are not overconfident). Each set has 3–6
    /// players, true θ uniform in [−1.5, 1.5], and 5–300 votes between random pairs, a tenth
    /// of them ties.
    #[test]
    fn intervals_cover_the_true_strengths_at_about_the_nominal_rate() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(19);
        let (mut inside, mut total) = (0usize, 0usize);
        let (mut small_inside, mut small_total) = (0usize, 0usize);
        for set in 0..600 {
            let players = rng.random_range(3..=6);
            let truth: Vec<f64> = (0..players).map(|_| rng.random_range(-1.5..1.5)).collect();
            let mean = truth.iter().sum::<f64>() / players as f64;
            let votes = if set % 3 == 0 {
                rng.random_range(5..30)
            } else {
                rng.random_range(30..300)
            };
            let mut c = Vec::with_capacity(votes);
            for _ in 0..votes {
                let a = rng.random_range(0..players);
                let b = (a + rng.random_range(1..players)) % players;
                let outcome = if rng.random_bool(0.1) {
                    Outcome::Tie
                } else if rng.random_bool(win_probability(truth[a], truth[b])) {
                    Outcome::AWins
                } else {
                    Outcome::BWins
                };
                c.push(Comparison { a, b, outcome });
            }
            let iv = posterior(players, &c, DEFAULT_PRIOR).intervals;
            for (t, i) in truth.iter().zip(&iv) {
                let hit = i.low <= t - mean && t - mean <= i.high;
                inside += usize::from(hit);
                total += 1;
                if votes < 30 {
                    small_inside += usize::from(hit);
                    small_total += 1;
                }
            }
        }
        let rate = inside as f64 / total as f64;
        let small = small_inside as f64 / small_total as f64;
        println!("coverage {rate:.3} over {total} strengths; with < 30 votes {small:.3} over {small_total}");
        assert!((0.85..=0.99).contains(&rate), "coverage {rate}");
        assert!(
            (0.85..=0.99).contains(&small),
            "small-sample coverage {small}"
        );
    }

    /// The Cholesky inverse against a hand-inverted matrix.
    #[test]
    fn spd_inverse_matches_hand_computation() {
        // [[4, 2], [2, 3]]⁻¹ = 1/8 · [[3, −2], [−2, 4]].
        let inv = invert_spd(&[vec![4.0, 2.0], vec![2.0, 3.0]]).unwrap();
        let want = [[0.375, -0.25], [-0.25, 0.5]];
        for i in 0..2 {
            for j in 0..2 {
                assert!((inv[i][j] - want[i][j]).abs() < 1e-12, "{inv:?}");
            }
        }
        assert!(invert_spd(&[vec![1.0, 1.0], vec![1.0, 1.0]]).is_none());
    }
}
