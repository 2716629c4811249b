//! The leaderboard: which variant (or model) is better, and how sure we are.
//!
//! A ranking from a handful of ratings invites wrong decisions, so every figure carries its
//! sample size and a 95% interval, and entries with fewer than [`MIN_SAMPLE`] observations
//! are marked `n=K` instead of being ranked:
//! - mean stars with a Student-t interval (clamped to 1–5);
//! - thumbs-up share and expectation pass rate with Wilson score intervals (good at small n
//!   and near 0% or 100%, unlike the normal approximation);
//! - Bradley–Terry strength from blind votes ([`super::bradley_terry`]) with Laplace posterior
//!   intervals (they keep the prior's uncertainty, so a few unanimous votes stay wide). Both-bad votes are counted per entry but not fitted: they say
//!   nothing about which side was better.
//!
//! - the LLM judge's 1–10 score (judge nodes whose parent is the answer; unparseable verdicts
//!   are counted, never scored), and how well it agrees with the humans: Spearman's ρ between
//!   the judge score and the mean stars over the answers both rated, with that `n`.
//!
//! Ranks say only what the intervals support: an entry's rank is 1 + the number of ranked
//! entries clearly better than it, and a `~` marks a rank shared with an entry it can't be
//! told apart from. By votes, "clearly better" is a 95% interval of the strength difference
//! that leaves out 0 (from the same posterior, so it accounts for how the two strengths
//! covary; for two entries it is exactly "the two intervals lie apart"); by stars, the two
//! t-intervals lie apart. A zero-width interval (all stars equal, say) measures
//! no spread, so it never separates two entries.
//!
//! Only final answers (`answer` and `rewrite` nodes) count; critiques, thoughts and judges
//! are not what a variant is judged on.

use std::fmt::Write as _;

use crate::eval::bradley_terry::{self, Comparison, Interval, Outcome};
use crate::state::session::{Node, NodeKind, Session};

/// Fewer observations than this are shown as `n=K`, not ranked.
pub(crate) const MIN_SAMPLE: usize = 5;

/// What entries are grouped by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum GroupBy {
    Variant,
    Model,
    /// Each variant on each model (`variant @ model`): "base model + best prompt" against
    /// "tuned model + plain prompt" in one table.
    VariantModel,
    /// Each version of each variant (`variant v2`, see [`crate::state::versions`]); answers
    /// from before versions were recorded are `variant (unversioned)`.
    VariantVersion,
}

impl GroupBy {
    pub fn as_str(self) -> &'static str {
        match self {
            GroupBy::Variant => "variant",
            GroupBy::Model => "model",
            GroupBy::VariantModel => "variant @ model",
            GroupBy::VariantVersion => "variant version",
        }
    }

    fn key(self, n: &Node) -> std::borrow::Cow<'_, str> {
        match self {
            GroupBy::Variant => n.variant.as_str().into(),
            GroupBy::Model => n.model.as_str().into(),
            GroupBy::VariantModel => format!("{} @ {}", n.variant, n.model).into(),
            GroupBy::VariantVersion => match crate::state::versions::number_of(n) {
                Some(v) => format!("{} v{v}", n.variant).into(),
                None => format!("{} (unversioned)", n.variant).into(),
            },
        }
    }
}

/// A proportion with its counts and Wilson interval.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Share {
    pub hits: usize,
    pub n: usize,
    pub interval: Interval,
}

/// One row of the leaderboard.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Entry {
    pub name: String,
    pub answers: usize,
    /// Mean stars with a t-interval, and how many star ratings.
    pub stars: Option<Interval>,
    pub stars_n: usize,
    pub thumbs_up: Option<Share>,
    pub pass_rate: Option<Share>,
    /// Centred Bradley–Terry log-strength with its 95% posterior interval (`None`: no votes).
    pub strength: Option<Interval>,
    pub wins: usize,
    pub losses: usize,
    pub ties: usize,
    pub both_bad: usize,
    /// 1-based position among the ranked entries, or `None` for too small a sample.
    pub rank: Option<usize>,
    /// 1 + ranked entries clearly better (their interval wholly above this one's).
    pub distinct_rank: Option<usize>,
    /// The interval overlaps another ranked entry's: not distinguishable from it.
    pub tied: bool,
    /// Mean LLM judge score (1–10) over the judged answers, with a t-interval.
    pub judge: Option<Interval>,
    /// Answers with at least one readable judge score.
    pub judge_n: usize,
    /// Judge verdicts that could not be read as a score.
    pub judge_unparseable: usize,
    /// What all its answers cost (dollars), `None` when one of them has an unpriced model.
    pub cost: Option<f64>,
    /// Self-consistency: the mean agreement (majority share) over its sampled cells
    /// (`samples = N`), and how many cells.
    pub stability: Option<f64>,
    pub stability_cells: usize,
}

impl Entry {
    /// What one passing answer cost: all the answers' cost over the passing ones (the
    /// failures were paid for too). `None` without a price or without a passing answer.
    pub fn cost_per_pass(&self) -> Option<f64> {
        let passed = self.pass_rate.map_or(0, |s| s.hits);
        self.cost.filter(|_| passed > 0).map(|c| c / passed as f64)
    }

    /// Votes fitted for this entry (wins, losses, ties).
    pub fn votes(&self) -> usize {
        self.wins + self.losses + self.ties
    }

    /// The rank (`~2`: shared with an entry it can't be told apart from), or `n=K` when the
    /// sample is too small to rank.
    pub fn rank_label(&self, by_votes: bool) -> String {
        match (self.rank, self.distinct_rank) {
            (Some(_), Some(d)) if self.tied => format!("~{d}"),
            (Some(_), Some(d)) => d.to_string(),
            (Some(r), None) => r.to_string(),
            (None, _) => format!("n={}", if by_votes { self.votes() } else { self.stars_n }),
        }
    }

    /// The interval ranks are judged by.
    fn rank_interval(&self, by_votes: bool) -> Option<Interval> {
        if by_votes {
            self.strength
        } else {
            self.stars
        }
    }
}

/// How well the LLM judge agrees with the humans on the answers both rated.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Agreement {
    /// Answers with both a judge score and human stars.
    pub n: usize,
    /// Spearman's rank correlation (average ranks for ties); `None` when either side is
    /// constant.
    pub spearman: Option<f64>,
    /// Of the pairs of answers both sides order strictly, the share ordered the same way.
    pub concordant: Option<f64>,
    pub ordered_pairs: usize,
}

/// The whole table.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Leaderboard {
    pub by: GroupBy,
    /// Ranked by Bradley–Terry strength (there are votes) rather than by mean stars.
    pub by_votes: bool,
    pub entries: Vec<Entry>,
    /// Votes between two answers of the same entry (not informative here) or naming
    /// unknown nodes.
    pub votes_skipped: usize,
    pub both_bad_votes: usize,
    pub agreement: Option<Agreement>,
}

impl Leaderboard {
    pub fn index_of(&self, name: &str) -> Option<usize> {
        self.entries.iter().position(|e| e.name == name)
    }
}

fn counts(n: &Node) -> bool {
    matches!(n.kind, NodeKind::Answer | NodeKind::Rewrite)
}

/// Per judged node: (sum of readable scores, readable count, unparseable count). Pairwise
/// judge nodes (`pair` in meta) give preferences, not scores, and are left out.
fn judge_scores(session: &Session) -> std::collections::BTreeMap<u64, (f64, usize, usize)> {
    let mut out: std::collections::BTreeMap<u64, (f64, usize, usize)> = Default::default();
    for j in &session.nodes {
        if j.kind != NodeKind::Judge || j.meta.contains_key("pair") {
            continue;
        }
        let Some(parent) = j.parent else { continue };
        if j.status != crate::state::session::NodeStatus::Done {
            continue;
        }
        let e = out.entry(parent).or_default();
        match j.score {
            Some(x) if x.is_finite() => {
                e.0 += x;
                e.1 += 1;
            }
            _ => e.2 += 1,
        }
    }
    out
}

/// Average ranks (1-based), ties sharing the mean of their positions.
fn ranks(xs: &[f64]) -> Vec<f64> {
    let mut idx: Vec<usize> = (0..xs.len()).collect();
    idx.sort_by(|&a, &b| xs[a].total_cmp(&xs[b]));
    let mut r = vec![0.0; xs.len()];
    let mut i = 0;
    while i < idx.len() {
        let mut j = i;
        while j + 1 < idx.len() && xs[idx[j + 1]] == xs[idx[i]] {
            j += 1;
        }
        let avg = (i + j) as f64 / 2.0 + 1.0;
        for k in i..=j {
            r[idx[k]] = avg;
        }
        i = j + 1;
    }
    r
}

fn pearson(a: &[f64], b: &[f64]) -> Option<f64> {
    let n = a.len() as f64;
    if a.len() < 2 {
        return None;
    }
    let (ma, mb) = (a.iter().sum::<f64>() / n, b.iter().sum::<f64>() / n);
    let cov: f64 = a.iter().zip(b).map(|(x, y)| (x - ma) * (y - mb)).sum();
    let va: f64 = a.iter().map(|x| (x - ma).powi(2)).sum();
    let vb: f64 = b.iter().map(|y| (y - mb).powi(2)).sum();
    (va > 0.0 && vb > 0.0).then(|| cov / (va * vb).sqrt())
}

/// Judge–human agreement over `pairs` of (judge score, mean stars).
pub(crate) fn agreement(pairs: &[(f64, f64)]) -> Option<Agreement> {
    if pairs.is_empty() {
        return None;
    }
    let judge: Vec<f64> = pairs.iter().map(|p| p.0).collect();
    let human: Vec<f64> = pairs.iter().map(|p| p.1).collect();
    let spearman = pearson(&ranks(&judge), &ranks(&human));
    let (mut same, mut ordered) = (0usize, 0usize);
    for i in 0..pairs.len() {
        for j in i + 1..pairs.len() {
            let dj = judge[i] - judge[j];
            let dh = human[i] - human[j];
            if dj != 0.0 && dh != 0.0 {
                ordered += 1;
                if (dj > 0.0) == (dh > 0.0) {
                    same += 1;
                }
            }
        }
    }
    Some(Agreement {
        n: pairs.len(),
        spearman,
        concordant: (ordered > 0).then(|| same as f64 / ordered as f64),
        ordered_pairs: ordered,
    })
}

/// Build the leaderboard of `session` grouped `by` variant or model.
pub(crate) fn build(session: &Session, by: GroupBy) -> Leaderboard {
    let mut names: Vec<String> = Vec::new();
    let mut answers: Vec<usize> = Vec::new();
    // The entry of each counted node.
    let mut group: std::collections::HashMap<u64, usize> = Default::default();
    for n in session.nodes.iter().filter(|n| counts(n)) {
        let k = by.key(n);
        let i = match names.iter().position(|x| *x == k) {
            Some(i) => {
                answers[i] += 1;
                i
            }
            None => {
                names.push(k.into_owned());
                answers.push(1);
                names.len() - 1
            }
        };
        group.insert(n.id, i);
    }
    let node_group = |id: u64| group.get(&id).copied();
    let players = names.len();
    let mut stars: Vec<Vec<f64>> = vec![Vec::new(); players];
    let mut ups = vec![(0usize, 0usize); players];
    let mut pass = vec![(0usize, 0usize); players];
    let mut agreements: Vec<Vec<f64>> = vec![Vec::new(); players];
    for samples in super::consistency::group_samples(session).values() {
        let group = samples.first().and_then(|n| node_group(n.id));
        if let (Some(i), Some(st)) = (group, super::consistency::stability(samples)) {
            agreements[i].push(st.agreement);
        }
    }
    let mut cost: Vec<Option<f64>> = vec![Some(0.0); players];
    for n in session.nodes.iter().filter(|n| counts(n)) {
        if let Some(i) = node_group(n.id) {
            cost[i] = cost[i].zip(n.cost(&session.prices)).map(|(a, b)| a + b);
        }
    }
    for r in &session.ratings {
        let Some(i) = node_group(r.node) else {
            continue;
        };
        if let Some(s) = r.stars {
            stars[i].push(f64::from(s));
        }
        if let Some(t) = r.thumb {
            ups[i].1 += 1;
            if t > 0 {
                ups[i].0 += 1;
            }
        }
    }
    for n in session.nodes.iter().filter(|n| counts(n)) {
        if let (Some(p), Some(i)) = (n.passed(), node_group(n.id)) {
            pass[i].1 += 1;
            if p {
                pass[i].0 += 1;
            }
        }
    }
    let judged = judge_scores(session);
    let mut judge: Vec<Vec<f64>> = vec![Vec::new(); players];
    let mut judge_bad = vec![0usize; players];
    let mut both_rated = Vec::new();
    for (&node, &(sum, k, bad)) in &judged {
        let Some(i) = node_group(node) else {
            continue;
        };
        judge_bad[i] += bad;
        if k == 0 {
            continue;
        }
        let score = sum / k as f64;
        judge[i].push(score);
        let stars: Vec<f64> = session
            .ratings
            .iter()
            .filter(|r| r.node == node)
            .filter_map(|r| r.stars.map(f64::from))
            .collect();
        if !stars.is_empty() {
            both_rated.push((score, stars.iter().sum::<f64>() / stars.len() as f64));
        }
    }
    let mut comparisons = Vec::new();
    let mut wlt = vec![(0usize, 0usize, 0usize, 0usize); players];
    let mut skipped = 0;
    let mut both_bad_votes = 0;
    for v in &session.votes {
        let (Some(a), Some(b)) = (node_group(v.left), node_group(v.right)) else {
            skipped += 1;
            continue;
        };
        if a == b {
            skipped += 1;
            continue;
        }
        let outcome = match v.outcome.as_str() {
            "left" => {
                wlt[a].0 += 1;
                wlt[b].1 += 1;
                Outcome::AWins
            }
            "right" => {
                wlt[b].0 += 1;
                wlt[a].1 += 1;
                Outcome::BWins
            }
            "tie" => {
                wlt[a].2 += 1;
                wlt[b].2 += 1;
                Outcome::Tie
            }
            "both_bad" => {
                wlt[a].3 += 1;
                wlt[b].3 += 1;
                both_bad_votes += 1;
                continue;
            }
            _ => {
                skipped += 1;
                continue;
            }
        };
        comparisons.push(Comparison { a, b, outcome });
    }
    let by_votes = !comparisons.is_empty();
    let posterior = by_votes
        .then(|| bradley_terry::posterior(players, &comparisons, bradley_terry::DEFAULT_PRIOR));
    let mut entries: Vec<Entry> = (0..players)
        .map(|i| {
            let (w, l, t, bb) = wlt[i];
            Entry {
                name: names[i].clone(),
                answers: answers[i],
                stars: mean_interval(&stars[i]).map(|iv| Interval {
                    estimate: iv.estimate,
                    low: iv.low.max(1.0),
                    high: iv.high.min(5.0),
                }),
                stars_n: stars[i].len(),
                thumbs_up: share(ups[i].0, ups[i].1),
                pass_rate: share(pass[i].0, pass[i].1),
                strength: posterior
                    .as_ref()
                    .filter(|_| w + l + t > 0)
                    .map(|p| p.intervals[i]),
                wins: w,
                losses: l,
                ties: t,
                both_bad: bb,
                rank: None,
                distinct_rank: None,
                tied: false,
                judge: mean_interval(&judge[i]).map(|iv| Interval {
                    estimate: iv.estimate,
                    low: iv.low.max(1.0),
                    high: iv.high.min(10.0),
                }),
                judge_n: judge[i].len(),
                judge_unparseable: judge_bad[i],
                cost: cost[i],
                stability: (!agreements[i].is_empty())
                    .then(|| agreements[i].iter().sum::<f64>() / agreements[i].len() as f64),
                stability_cells: agreements[i].len(),
            }
        })
        .collect();
    let key = |e: &Entry| -> (f64, f64) {
        let s = e.stars.map_or(f64::NEG_INFINITY, |s| s.estimate);
        if by_votes {
            (e.strength.map_or(f64::NEG_INFINITY, |s| s.estimate), s)
        } else {
            (
                s,
                e.pass_rate
                    .map_or(f64::NEG_INFINITY, |p| p.interval.estimate),
            )
        }
    };
    entries.sort_by(|a, b| {
        let (ka, kb) = (key(a), key(b));
        kb.0.total_cmp(&ka.0)
            .then(kb.1.total_cmp(&ka.1))
            .then(a.name.cmp(&b.name))
    });
    let mut next = 1;
    for e in &mut entries {
        let n = if by_votes { e.votes() } else { e.stars_n };
        if n >= MIN_SAMPLE {
            e.rank = Some(next);
            next += 1;
        }
    }
    // Too-small samples go below every ranked entry, whatever their estimate: a lucky
    // first vote must not look like first place.
    entries.sort_by_key(|e| e.rank.is_none());
    let ranked: Vec<(usize, Option<Interval>)> = entries
        .iter()
        .enumerate()
        .filter(|(_, e)| e.rank.is_some())
        .map(|(i, e)| (i, e.rank_interval(by_votes)))
        .collect();
    let player = |e: &Entry| names.iter().position(|n| *n == e.name);
    for &(i, iv) in &ranked {
        let Some(iv) = iv else { continue };
        let (mut better, mut tied) = (0, false);
        for &(j, o) in &ranked {
            let Some(o) = o else { continue };
            if j == i {
                continue;
            }
            // Votes: a pairwise test on the posterior of θ_j − θ_i (it knows how the two
            // strengths covary); stars: the two t-intervals lie apart.
            let (apart, above) = match (&posterior, player(&entries[i]), player(&entries[j])) {
                (Some(p), Some(pi), Some(pj)) => {
                    (p.separated(pj, pi), p.difference(pj, pi).low > 0.0)
                }
                _ => (o.separated_from(&iv), o.low > iv.high),
            };
            if apart && above {
                better += 1;
            }
            tied |= !apart;
        }
        entries[i].distinct_rank = Some(better + 1);
        entries[i].tied = tied;
    }
    Leaderboard {
        by,
        by_votes,
        entries,
        votes_skipped: skipped,
        both_bad_votes,
        agreement: agreement(&both_rated),
    }
}

/// Mean with a two-sided 95% Student-t interval. A single sample has an unbounded interval
/// (shown as the full 1–5 range after clamping).
pub(crate) fn mean_interval(xs: &[f64]) -> Option<Interval> {
    let n = xs.len();
    if n == 0 {
        return None;
    }
    let mean = xs.iter().sum::<f64>() / n as f64;
    if n == 1 {
        return Some(Interval {
            estimate: mean,
            low: f64::NEG_INFINITY,
            high: f64::INFINITY,
        });
    }
    let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1) as f64;
    let half = t_975(n - 1) * (var / n as f64).sqrt();
    Some(Interval {
        estimate: mean,
        low: mean - half,
        high: mean + half,
    })
}

/// The 97.5% quantile of Student's t with `df` degrees of freedom: a table to 30, then the
/// Cornish–Fisher expansion (error below 1e-4 there).
pub(crate) fn t_975(df: usize) -> f64 {
    const TABLE: [f64; 30] = [
        12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160,
        2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056,
        2.052, 2.048, 2.045, 2.042,
    ];
    if df == 0 {
        return f64::INFINITY;
    }
    if df <= 30 {
        return TABLE[df - 1];
    }
    let z = 1.959_963_985f64;
    let v = df as f64;
    z + (z.powi(3) + z) / (4.0 * v)
        + (5.0 * z.powi(5) + 16.0 * z.powi(3) + 3.0 * z) / (96.0 * v * v)
}

/// A share with its 95% Wilson score interval.
pub(crate) fn share(hits: usize, n: usize) -> Option<Share> {
    if n == 0 {
        return None;
    }
    let z = 1.959_963_985f64;
    let nf = n as f64;
    let p = hits as f64 / nf;
    let denom = 1.0 + z * z / nf;
    let centre = (p + z * z / (2.0 * nf)) / denom;
    let half = z / denom * (p * (1.0 - p) / nf + z * z / (4.0 * nf * nf)).sqrt();
    Some(Share {
        hits,
        n,
        interval: Interval {
            estimate: p,
            low: (centre - half).max(0.0),
            high: (centre + half).min(1.0),
        },
    })
}

/// The leaderboard as a Markdown table (for the export report).
pub(crate) fn to_markdown(board: &Leaderboard) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "| rank | {} | answers | mean stars (95% t) | thumbs up (95% Wilson) | passed (95% Wilson) | BT strength (95% posterior) | W-L-T | both bad | LLM judge 1-10 (95% t) | cost | cost per passing answer | stability |",
        board.by.as_str()
    );
    let _ = writeln!(
        out,
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"
    );
    for e in &board.entries {
        let stars = match e.stars {
            Some(s) => format!(
                "{:.2} [{:.2}, {:.2}] n={}",
                s.estimate, s.low, s.high, e.stars_n
            ),
            None => "-".into(),
        };
        let share_cell = |s: &Option<Share>| match s {
            Some(s) => format!(
                "{:.0}% [{:.0}, {:.0}] {}/{}",
                100.0 * s.interval.estimate,
                100.0 * s.interval.low,
                100.0 * s.interval.high,
                s.hits,
                s.n
            ),
            None => "-".into(),
        };
        let strength = match e.strength {
            Some(s) => format!("{:+.2} [{:+.2}, {:+.2}]", s.estimate, s.low, s.high),
            None => "-".into(),
        };
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} | {}-{}-{} | {} | {} | {} | {} | {} |",
            e.rank_label(board.by_votes),
            e.name.replace('|', "\\|"),
            e.answers,
            stars,
            share_cell(&e.thumbs_up),
            share_cell(&e.pass_rate),
            strength,
            e.wins,
            e.losses,
            e.ties,
            e.both_bad,
            judge_cell(e),
            usd_cell(e.cost),
            usd_cell(e.cost_per_pass()),
            stability_cell(e)
        );
    }
    let _ =
        writeln!(
        out,
        "\nRanked by {}; entries with fewer than {MIN_SAMPLE} {} show `n=K` instead of a rank. \
         BT strength is a centred log-strength: a difference of d means odds of e^d to 1. \
         Ties count half a win each; {} both-bad vote(s) are counted but not fitted.",
        ranking_basis(board),
        if board.by_votes { "votes" } else { "star ratings" },
        board.both_bad_votes
    );
    let _ = writeln!(out, "\n{}", agreement_text(board.agreement.as_ref()));
    out
}

/// The stability cell: mean agreement of its sampled cells, `-` when none was sampled.
pub(crate) fn stability_cell(e: &Entry) -> String {
    match e.stability {
        Some(a) => format!(
            "{:.0}% agree ({} cell{})",
            100.0 * a,
            e.stability_cells,
            if e.stability_cells == 1 { "" } else { "s" }
        ),
        None => "-".into(),
    }
}

/// A dollar cell: `-` when unknown (an unpriced model, or nothing passed).
pub(crate) fn usd_cell(usd: Option<f64>) -> String {
    usd.map_or_else(|| "-".into(), crate::price::format_usd)
}

/// What the ranking rests on, in words: "no votes yet" only when there are none at all.
pub(crate) fn ranking_basis(board: &Leaderboard) -> String {
    if board.by_votes {
        "Bradley–Terry strength from blind votes".into()
    } else if board.both_bad_votes > 0 {
        format!(
            "mean stars (the {} blind vote(s) so far are all both-bad, which rank nothing)",
            board.both_bad_votes
        )
    } else {
        "mean stars (no votes yet)".into()
    }
}

/// The judge column: mean with interval and n, plus unreadable verdicts.
pub(crate) fn judge_cell(e: &Entry) -> String {
    let bad = if e.judge_unparseable > 0 {
        format!(" ({} unparseable)", e.judge_unparseable)
    } else {
        String::new()
    };
    match e.judge {
        Some(j) => format!(
            "{:.1} [{:.1}, {:.1}] n={}{bad}",
            j.estimate, j.low, j.high, e.judge_n
        ),
        None if e.judge_unparseable > 0 => format!("unparseable ×{}", e.judge_unparseable),
        None => "-".into(),
    }
}

/// One sentence on judge–human agreement, saying which measure and on how many answers.
pub(crate) fn agreement_text(a: Option<&Agreement>) -> String {
    let Some(a) = a else {
        return "Judge vs humans: no answer has both a judge score and stars yet.".into();
    };
    let rho = a
        .spearman
        .map_or("undefined (one side constant)".to_string(), |r| {
            format!("{r:+.2}")
        });
    let conc = a.concordant.map_or(String::new(), |c| {
        format!(
            "; {:.0}% of {} strictly ordered pairs ordered the same way",
            100.0 * c,
            a.ordered_pairs
        )
    });
    let few = if a.n < MIN_SAMPLE {
        ", too few to trust"
    } else {
        ""
    };
    format!(
        "Judge vs humans: Spearman ρ = {rho} between judge score and mean stars over n={} answers both rated{few}{conc}.",
        a.n
    )
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::chat::{ChatMessage, ChatRequest, Role, Sampling};
    use crate::state::session::{NodeStatus, Rating, Vote};

    /// A session with `variants` × `cases` done answers; node ids run variant-major from 1.
    pub(crate) fn grid(variants: &[&str], cases: &[&str]) -> Session {
        let mut s = Session::new("grid", "2026-11-27T06:00:00Z".into(), None);
        let mut id = 1;
        for v in variants {
            for c in cases {
                let mut n = Node::start(
                    id,
                    None,
                    NodeKind::Answer,
                    v,
                    c,
                    &format!("m-{v}"),
                    ChatRequest {
                        messages: vec![
                            ChatMessage::new(Role::System, format!("Style {v}.")),
                            ChatMessage::new(Role::User, format!("Question {c}?")),
                        ],
                        sampling: Sampling::default(),
                    },
                    "t".into(),
                );
                n.status = NodeStatus::Done;
                n.text = format!("{v} answers {c}");
                s.nodes.push(n);
                id += 1;
            }
        }
        s
    }

    pub(crate) fn node_of(s: &Session, variant: &str, case: &str) -> u64 {
        s.nodes
            .iter()
            .find(|n| n.variant == variant && n.case == case)
            .map(|n| n.id)
            .unwrap()
    }

    pub(crate) fn vote(s: &mut Session, left: u64, right: u64, outcome: &str) {
        s.votes.push(Vote {
            left,
            right,
            outcome: outcome.into(),
            rater: "r".into(),
            at: "t".into(),
            seq: None,
        });
    }

    fn rate(s: &mut Session, node: u64, stars: Option<u8>, thumb: Option<i8>) {
        s.ratings.push(Rating {
            node,
            stars,
            thumb,
            note: None,
            rater: format!("r{}", s.ratings.len()),
            at: "t".into(),
            seq: None,
        });
    }

    #[test]
    fn t_quantiles_match_tables() {
        assert_eq!(t_975(1), 12.706);
        assert!((t_975(30) - 2.042).abs() < 1e-3);
        assert!((t_975(31) - 2.0395).abs() < 1e-3, "{}", t_975(31));
        assert!((t_975(120) - 1.9799).abs() < 1e-3, "{}", t_975(120));
    }

    #[test]
    fn wilson_interval_matches_a_worked_value() {
        // 8 of 10: Wilson 95% interval [0.490, 0.943] (Newcombe 1998, method 3).
        let s = share(8, 10).unwrap();
        assert!((s.interval.low - 0.490).abs() < 1e-3, "{s:?}");
        assert!((s.interval.high - 0.943).abs() < 1e-3, "{s:?}");
        let all = share(5, 5).unwrap();
        assert_eq!(all.interval.high, 1.0);
        assert!(all.interval.low < 0.6);
    }

    #[test]
    fn star_interval_is_a_t_interval() {
        let iv = mean_interval(&[3.0, 4.0, 5.0]).unwrap();
        // mean 4, sd 1, se 1/sqrt(3), t(2) = 4.303.
        let half = 4.303 / 3f64.sqrt();
        assert!((iv.low - (4.0 - half)).abs() < 1e-9);
        assert!((iv.high - (4.0 + half)).abs() < 1e-9);
    }

    #[test]
    fn votes_rank_variants_and_small_samples_are_marked() {
        let mut s = grid(&["a", "b", "c"], &["c1", "c2", "c3", "c4"]);
        for c in ["c1", "c2", "c3", "c4"] {
            let (a, b) = (node_of(&s, "a", c), node_of(&s, "b", c));
            vote(&mut s, a, b, "left");
            vote(&mut s, b, a, "right");
        }
        let (b1, a1) = (node_of(&s, "b", "c1"), node_of(&s, "a", "c1"));
        vote(&mut s, b1, a1, "tie");
        vote(&mut s, b1, a1, "both_bad");
        // c: only two votes, so it is not ranked.
        let (c1, b2) = (node_of(&s, "c", "c1"), node_of(&s, "b", "c1"));
        vote(&mut s, c1, b2, "right");
        vote(&mut s, c1, b2, "right");
        // A vote between two answers of the same variant is not informative.
        let a2 = node_of(&s, "a", "c2");
        vote(&mut s, a1, a2, "left");
        let board = build(&s, GroupBy::Variant);
        assert!(board.by_votes);
        let names: Vec<&str> = board.entries.iter().map(|e| e.name.as_str()).collect();
        assert_eq!(names, ["a", "b", "c"]);
        assert_eq!(board.entries[0].rank, Some(1));
        assert_eq!(board.entries[1].rank, Some(2));
        assert_eq!(board.entries[2].rank, None);
        assert_eq!(board.entries[2].rank_label(true), "n=2");
        let a = &board.entries[0];
        assert_eq!((a.wins, a.losses, a.ties, a.both_bad), (8, 0, 1, 1));
        assert_eq!(board.both_bad_votes, 1);
        assert_eq!(board.votes_skipped, 1);
        let sa = a.strength.unwrap();
        assert!(sa.low <= sa.estimate && sa.estimate <= sa.high);
        // The same board by model: names are m-a, m-b, m-c.
        let models = build(&s, GroupBy::Model);
        assert_eq!(models.entries[0].name, "m-a");
        let md = to_markdown(&board);
        assert!(md.contains("| 1 | a | 4 |"), "{md}");
        assert!(md.contains("| n=2 | c |"), "{md}");
    }

    #[test]
    fn without_votes_ranks_by_stars_with_thumbs_and_pass_rate() {
        let mut s = grid(&["a", "b"], &["c1"]);
        let (a, b) = (node_of(&s, "a", "c1"), node_of(&s, "b", "c1"));
        for _ in 0..5 {
            rate(&mut s, a, Some(2), Some(-1));
            rate(&mut s, b, Some(5), Some(1));
        }
        rate(&mut s, b, None, Some(-1));
        s.nodes[0].checks = vec![crate::eval::expect::CheckResult {
            kind: "any".into(),
            pass: true,
            detail: String::new(),
        }];
        let board = build(&s, GroupBy::Variant);
        assert!(!board.by_votes);
        assert_eq!(board.entries[0].name, "b");
        assert_eq!(board.entries[0].stars.unwrap().estimate, 5.0);
        let up = board.entries[0].thumbs_up.unwrap();
        assert_eq!((up.hits, up.n), (5, 6));
        assert_eq!(board.entries[1].pass_rate.unwrap().hits, 1);
        assert!(board.entries[0].strength.is_none());
        assert_eq!(board.entries[0].rank, Some(1));
    }

    #[test]
    fn stability_is_the_mean_agreement_of_the_sampled_cells() {
        let mut s = grid(&["a", "b"], &["c1", "c2", "c3"]);
        // a: three samples of c1, two agreeing; b: not sampled.
        for (i, n) in s.nodes.iter_mut().filter(|n| n.variant == "a").enumerate() {
            n.meta
                .insert(crate::eval::consistency::GROUP_KEY.into(), "a/c1".into());
            n.text = if i < 2 { "London." } else { "Paris" }.into();
        }
        let board = build(&s, GroupBy::Variant);
        let a = &board.entries[board.index_of("a").unwrap()];
        assert!((a.stability.unwrap() - 2.0 / 3.0).abs() < 1e-12);
        assert_eq!(a.stability_cells, 1);
        assert_eq!(stability_cell(a), "67% agree (1 cell)");
        let b = &board.entries[board.index_of("b").unwrap()];
        assert_eq!(b.stability, None);
        assert!(to_markdown(&board).contains("| 67% agree (1 cell) |"));
    }

    #[test]
    fn cost_per_passing_answer_counts_the_failures_too() {
        let mut s = grid(&["a", "b"], &["c1", "c2", "c3", "c4"]);
        s.prices.insert(
            "m-a".into(),
            crate::price::Price {
                input: 1.0,
                output: 2.0,
            },
        );
        for (i, n) in s.nodes.iter_mut().enumerate() {
            n.prompt_tokens = Some(1000);
            n.tokens_out = 500;
            n.checks = vec![crate::eval::expect::CheckResult {
                kind: "any".into(),
                pass: i % 4 == 0,
                detail: String::new(),
            }];
        }
        let board = build(&s, GroupBy::Variant);
        let a = &board.entries[board.index_of("a").unwrap()];
        // Four answers at $0.002 each, one passes.
        assert!((a.cost.unwrap() - 0.008).abs() < 1e-12);
        assert!((a.cost_per_pass().unwrap() - 0.008).abs() < 1e-12);
        // b's model has no price: unknown, not free.
        let b = &board.entries[board.index_of("b").unwrap()];
        assert_eq!(b.cost, None);
        assert_eq!(b.cost_per_pass(), None);
        let md = to_markdown(&board);
        assert!(
            md.contains("| $0.0080 | $0.0080 |") || md.contains("| $0.008000 | $0.008000 |"),
            "{md}"
        );
    }
}

#[cfg(test)]
mod judge_tests {
    use super::tests::{grid, node_of, vote};
    use super::*;
    use crate::chat::{ChatRequest, Sampling};
    use crate::state::session::{NodeStatus, Rating};

    fn judge(s: &mut Session, parent: u64, score: Option<f64>) {
        let id = s.next_node_id();
        let mut n = Node::start(
            id,
            Some(parent),
            NodeKind::Judge,
            "judge",
            "c",
            "m",
            ChatRequest {
                messages: vec![],
                sampling: Sampling::default(),
            },
            "t".into(),
        );
        n.status = NodeStatus::Done;
        n.score = score;
        s.nodes.push(n);
    }

    fn stars(s: &mut Session, node: u64, k: u8) {
        s.ratings.push(Rating {
            node,
            stars: Some(k),
            thumb: None,
            note: None,
            rater: "ann".into(),
            at: "t".into(),
            seq: None,
        });
    }

    #[test]
    fn judge_scores_sit_beside_stars_and_agreement_is_spearman_with_n() {
        let mut s = grid(&["a", "b"], &["c1", "c2", "c3"]);
        let ids: Vec<u64> = s.nodes.iter().map(|n| n.id).collect();
        // Judge and humans order the six answers the same way, except one swap.
        let judge_scores = [2.0, 4.0, 6.0, 7.0, 9.0, 8.0];
        let human = [1u8, 2, 3, 4, 4, 5];
        for (k, &id) in ids.iter().enumerate() {
            judge(&mut s, id, Some(judge_scores[k]));
            stars(&mut s, id, human[k]);
        }
        // An unreadable verdict is counted, never scored; a pairwise judge is ignored.
        judge(&mut s, ids[0], None);
        judge(&mut s, ids[1], Some(10.0));
        s.nodes
            .last_mut()
            .unwrap()
            .meta
            .insert("pair".into(), "A=#1 B=#2".into());
        let board = build(&s, GroupBy::Variant);
        let a = &board.entries[board.index_of("a").unwrap()];
        assert_eq!(a.judge_n, 3);
        assert_eq!(a.judge_unparseable, 1);
        assert!((a.judge.unwrap().estimate - 4.0).abs() < 1e-9);
        let ag = board.agreement.unwrap();
        assert_eq!(ag.n, 6);
        // Ranks: judge 1 2 3 4 6 5; humans 1 2 3 4.5 4.5 6: ρ = 15.5 / √(17.5·17).
        let rho = ag.spearman.unwrap();
        assert!((rho - 0.8986).abs() < 1e-3, "{rho}");
        // 15 pairs, one human tie (not strictly ordered), one discordant of the rest.
        assert_eq!(ag.ordered_pairs, 14);
        assert!((ag.concordant.unwrap() - 13.0 / 14.0).abs() < 1e-9);
        let text = agreement_text(Some(&ag));
        assert!(
            text.contains("Spearman ρ = +0.90") && text.contains("n=6"),
            "{text}"
        );
        assert!(
            judge_cell(a).contains("(1 unparseable)"),
            "{}",
            judge_cell(a)
        );
        let md = to_markdown(&board);
        assert!(md.contains("LLM judge"), "{md}");
    }

    #[test]
    fn a_lucky_small_sample_is_listed_below_the_ranked_entries() {
        let mut s = grid(&["a", "b", "c"], &["c1"]);
        let (a, b, c) = (
            node_of(&s, "a", "c1"),
            node_of(&s, "b", "c1"),
            node_of(&s, "c", "c1"),
        );
        for k in 0..6 {
            vote(&mut s, a, b, if k % 2 == 0 { "left" } else { "right" });
        }
        // c won its only vote: the highest estimate, but one vote.
        vote(&mut s, c, a, "left");
        let board = build(&s, GroupBy::Variant);
        let names: Vec<&str> = board.entries.iter().map(|e| e.name.as_str()).collect();
        assert_eq!(names[2], "c", "{names:?}");
        assert_eq!(board.entries[2].rank_label(true), "n=1");
        assert!(board.entries[..2].iter().all(|e| e.rank.is_some()));
    }

    #[test]
    fn ranks_that_intervals_cannot_separate_are_shared_and_marked() {
        let mut s = grid(&["a", "b", "c"], &["c1"]);
        let (a, b, c) = (
            node_of(&s, "a", "c1"),
            node_of(&s, "b", "c1"),
            node_of(&s, "c", "c1"),
        );
        // a and b split evenly; both beat c every time.
        for k in 0..30 {
            vote(&mut s, a, b, if k % 2 == 0 { "left" } else { "right" });
            vote(&mut s, a, c, "left");
            vote(&mut s, b, c, "left");
        }
        let board = build(&s, GroupBy::Variant);
        let labels: Vec<(String, String)> = board
            .entries
            .iter()
            .map(|e| (e.name.clone(), e.rank_label(true)))
            .collect();
        let get = |n: &str| labels.iter().find(|l| l.0 == n).unwrap().1.clone();
        assert_eq!(get("a"), "~1", "{labels:?}");
        assert_eq!(get("b"), "~1", "{labels:?}");
        assert_eq!(get("c"), "3", "{labels:?}");
    }
}

#[cfg(test)]
mod interval_tests {
    use super::tests::{grid, node_of, vote};
    use super::*;

    fn labels(board: &Leaderboard) -> Vec<(String, String)> {
        board
            .entries
            .iter()
            .map(|e| (e.name.clone(), e.rank_label(true)))
            .collect()
    }

    /// Issue 19: five votes of "a beats b" ranked them 1 and 2 with zero-width intervals.
    #[test]
    fn five_unanimous_votes_leave_two_variants_tied() {
        let mut s = grid(&["a", "b"], &["c1"]);
        let (a, b) = (node_of(&s, "a", "c1"), node_of(&s, "b", "c1"));
        for _ in 0..5 {
            vote(&mut s, a, b, "left");
        }
        let board = build(&s, GroupBy::Variant);
        assert_eq!(
            labels(&board),
            [("a".into(), "~1".into()), ("b".into(), "~1".into())]
        );
        let sa = board.entries[0].strength.unwrap();
        assert!(sa.width() > 1.0, "{sa:?}");
        let md = to_markdown(&board);
        assert!(md.contains("| ~1 | a |"), "{md}");
    }

    #[test]
    fn two_hundred_votes_with_a_clear_winner_separate() {
        let mut s = grid(&["a", "b"], &["c1", "c2"]);
        for (k, c) in ["c1", "c2"].iter().cycle().take(200).enumerate() {
            let (a, b) = (node_of(&s, "a", c), node_of(&s, "b", c));
            // 140 to 60.
            vote(&mut s, a, b, if k % 10 < 7 { "left" } else { "right" });
        }
        let board = build(&s, GroupBy::Variant);
        assert_eq!(
            labels(&board),
            [("a".into(), "1".into()), ("b".into(), "2".into())]
        );
    }

    /// Equal stars everywhere give zero-width t-intervals: no spread measured, no separation.
    #[test]
    fn zero_width_star_intervals_do_not_separate() {
        let mut s = grid(&["a", "b"], &["c1"]);
        let (a, b) = (node_of(&s, "a", "c1"), node_of(&s, "b", "c1"));
        for k in 0..5 {
            for (node, stars) in [(a, 5), (b, 1)] {
                s.ratings.push(crate::state::session::Rating {
                    node,
                    stars: Some(stars),
                    thumb: None,
                    note: None,
                    rater: format!("r{k}"),
                    at: "t".into(),
                    seq: None,
                });
            }
        }
        let board = build(&s, GroupBy::Variant);
        assert_eq!(board.entries[0].stars.unwrap().width(), 0.0);
        let ranks: Vec<String> = board.entries.iter().map(|e| e.rank_label(false)).collect();
        assert_eq!(ranks, ["~1", "~1"]);
    }

    /// Issue 19: with only both-bad votes the footer said "no votes yet" beside
    /// "6 both-bad vote(s)".
    #[test]
    fn only_both_bad_votes_are_not_called_no_votes() {
        let mut s = grid(&["a", "b"], &["c1"]);
        let (a, b) = (node_of(&s, "a", "c1"), node_of(&s, "b", "c1"));
        for _ in 0..6 {
            vote(&mut s, a, b, "both_bad");
        }
        let board = build(&s, GroupBy::Variant);
        assert!(!board.by_votes);
        let md = to_markdown(&board);
        assert!(!md.contains("no votes yet"), "{md}");
        assert!(
            md.contains("the 6 blind vote(s) so far are all both-bad"),
            "{md}"
        );
        let empty = build(&grid(&["a"], &["c1"]), GroupBy::Variant);
        assert!(to_markdown(&empty).contains("no votes yet"));
    }
}

#[cfg(test)]
mod timing {
    use super::tests::{grid, node_of, vote};
    use super::*;

    /// How long a board takes (it is rebuilt on each compare key):
    /// `cargo test --no-default-features --release -- --ignored --nocapture board_build_time`
    #[test]
    #[ignore]
    fn board_build_time() {
        let variants = ["a", "b", "c", "d", "e", "f"];
        let cases: Vec<String> = (0..20).map(|i| format!("c{i}")).collect();
        let case_refs: Vec<&str> = cases.iter().map(String::as_str).collect();
        let mut s = grid(&variants, &case_refs);
        let mut k = 0usize;
        for c in &case_refs {
            for i in 0..variants.len() {
                for j in i + 1..variants.len() {
                    if k.is_multiple_of(3) {
                        let (x, y) = (node_of(&s, variants[i], c), node_of(&s, variants[j], c));
                        vote(&mut s, x, y, ["left", "right", "tie"][k % 7 % 3]);
                    }
                    k += 1;
                }
            }
        }
        {
            let t = std::time::Instant::now();
            let board = build(&s, GroupBy::Variant);
            let pairs = crate::eval::active::ranked_pairs(&s, &board);
            println!(
                "{} votes, {} variants: board + ranked pairs in {:.1} ms ({} candidates)",
                s.votes.len(),
                variants.len(),
                t.elapsed().as_secs_f64() * 1e3,
                pairs.len()
            );
        }
    }
}
