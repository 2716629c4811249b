//! Seeded sampling for the local backend.
//!
//! mistral.rs 0.8.1 has no per-request seed: its sampler draws from one engine-wide RNG, so
//! the same request gives different answers depending on what else ran before it. We sample
//! ourselves instead, inside a custom logits processor: temperature, top-k and top-p are
//! applied here with an RNG seeded from the request's `seed`, the chosen token keeps its logit
//! and every other token gets -inf, and the engine's own (greedy) sampler then takes it.
//! Same model file + same messages + same sampling + same seed = same answer.

use std::sync::Mutex;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// Temperature / top-k / top-p sampling with a private seeded RNG.
pub(crate) struct SeededSampler {
    rng: Mutex<StdRng>,
    temperature: f32,
    top_k: Option<usize>,
    top_p: Option<f32>,
}

impl SeededSampler {
    /// `temperature` must be positive (greedy decoding needs no sampler).
    pub fn new(seed: u64, temperature: f64, top_k: Option<usize>, top_p: Option<f64>) -> Self {
        SeededSampler {
            rng: Mutex::new(StdRng::seed_from_u64(seed)),
            temperature: temperature.max(1e-4) as f32,
            top_k: top_k.filter(|&k| k > 0),
            top_p: top_p.map(|p| p as f32).filter(|&p| p > 0.0 && p < 1.0),
        }
    }

    /// Pick a token index from raw logits.
    pub fn choose(&self, logits: &[f32]) -> usize {
        if logits.is_empty() {
            return 0;
        }
        let max = logits
            .iter()
            .copied()
            .filter(|x| x.is_finite())
            .fold(f32::NEG_INFINITY, f32::max);
        if !max.is_finite() {
            return 0;
        }
        // Unnormalised probabilities.
        let weights: Vec<f32> = logits
            .iter()
            .map(|&l| {
                if l.is_finite() {
                    ((l - max) / self.temperature).exp()
                } else {
                    0.0
                }
            })
            .collect();
        let total: f32 = weights.iter().sum();
        let u: f32 = match self.rng.lock() {
            Ok(mut rng) => rng.random::<f32>(),
            Err(poisoned) => poisoned.into_inner().random::<f32>(),
        };
        if self.top_k.is_none() && self.top_p.is_none() {
            return draw(weights.iter().copied().enumerate(), total * u);
        }
        let candidates = self.nucleus(&weights, total);
        let mass: f32 = candidates.iter().map(|&(_, w)| w).sum();
        draw(candidates.into_iter(), mass * u)
    }

    /// The top-k / top-p candidate set, in descending weight order. Sorts only as many of the
    /// largest weights as needed (growing the window), not the whole vocabulary.
    fn nucleus(&self, weights: &[f32], total: f32) -> Vec<(usize, f32)> {
        let n = weights.len();
        let limit = self.top_k.unwrap_or(n).min(n);
        let mut window = limit.clamp(1, 64);
        loop {
            let mut idx: Vec<usize> = (0..n).collect();
            if window < n {
                idx.select_nth_unstable_by(window - 1, |&a, &b| weights[b].total_cmp(&weights[a]));
                idx.truncate(window);
            }
            idx.sort_unstable_by(|&a, &b| weights[b].total_cmp(&weights[a]).then(a.cmp(&b)));
            let mut out = Vec::with_capacity(idx.len());
            let mut cum = 0.0;
            let mut reached = self.top_p.is_none();
            for &i in &idx {
                out.push((i, weights[i]));
                cum += weights[i];
                if let Some(p) = self.top_p {
                    if cum >= p * total {
                        reached = true;
                        break;
                    }
                }
            }
            if reached || window >= limit {
                return out;
            }
            window = (window * 4).min(limit);
        }
    }
}

fn draw(items: impl Iterator<Item = (usize, f32)>, target: f32) -> usize {
    let mut acc = 0.0;
    let mut last = 0;
    for (i, w) in items {
        if w <= 0.0 {
            continue;
        }
        acc += w;
        last = i;
        if acc > target {
            return i;
        }
    }
    last
}

/// Logits where only `chosen` survives: the engine's greedy sampler then picks it.
pub(crate) fn mask_all_but(len: usize, chosen: usize) -> Vec<f32> {
    let mut v = vec![f32::NEG_INFINITY; len];
    if chosen < len {
        v[chosen] = 0.0;
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    fn logits() -> Vec<f32> {
        (0..1000)
            .map(|i| ((i * 7919) % 1000) as f32 / 100.0)
            .collect()
    }

    #[test]
    fn same_seed_same_tokens_different_seed_differs() {
        let l = logits();
        let run = |seed| {
            let s = SeededSampler::new(seed, 1.5, None, None);
            (0..50).map(|_| s.choose(&l)).collect::<Vec<_>>()
        };
        assert_eq!(run(7), run(7));
        assert_ne!(run(7), run(8));
    }

    #[test]
    fn top_k_one_is_argmax() {
        let l = logits();
        let argmax = l
            .iter()
            .enumerate()
            .max_by(|a, b| a.1.total_cmp(b.1))
            .unwrap()
            .0;
        let s = SeededSampler::new(1, 5.0, Some(1), None);
        for _ in 0..20 {
            assert_eq!(s.choose(&l), argmax);
        }
    }

    #[test]
    fn top_p_keeps_only_the_nucleus() {
        // One dominant token with 90% of the mass: top_p 0.5 must always pick it.
        let mut l = vec![0.0f32; 500];
        l[42] = 10.0;
        let s = SeededSampler::new(3, 1.0, None, Some(0.5));
        for _ in 0..50 {
            assert_eq!(s.choose(&l), 42);
        }
    }

    #[test]
    fn top_p_window_grows_past_64_when_needed() {
        // Flat distribution: top_p 0.9 needs ~900 of 1000 tokens.
        let l = vec![1.0f32; 1000];
        let s = SeededSampler::new(5, 1.0, None, Some(0.9));
        let picks: std::collections::BTreeSet<usize> = (0..2000).map(|_| s.choose(&l)).collect();
        assert!(picks.len() > 500, "{}", picks.len());
    }

    #[test]
    fn never_picks_masked_tokens() {
        let mut l = vec![f32::NEG_INFINITY; 100];
        l[10] = 1.0;
        l[20] = 1.0;
        let s = SeededSampler::new(9, 1.0, None, None);
        for _ in 0..100 {
            let c = s.choose(&l);
            assert!(c == 10 || c == 20);
        }
        assert_eq!(
            mask_all_but(3, 1),
            vec![f32::NEG_INFINITY, 0.0, f32::NEG_INFINITY]
        );
    }
}
