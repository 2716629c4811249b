//! Token probabilities from the local engine.
//!
//! mistral.rs 0.8.1 can return log-probabilities (`return_logprobs`), but on the path every
//! promptloom request takes they are wrong: with temperature 0 its sampler
//! (`sampler.rs`, `sample_argmax`) takes `log10` of the *raw logits*, not of a softmax
//! (so a negative logit gives NaN and the figures are not probabilities), and a seeded
//! sample (our [`SeededProcessor`](super::SeededProcessor) masking all but the drawn token)
//! would report the masked distribution. What it gets right is *which* tokens are the most
//! likely (raw logits sort like probabilities) and their decoded text.
//!
//! So the figures come from here: a logits processor sees the model's logits at each step,
//! computes the natural-log softmax (OpenAI's convention, the model's own distribution at
//! temperature 1), and records the chosen token and the top `n`; the stream pairs each
//! engine chunk (which carries the token texts) with that record by token id.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use mistralrs::{CustomLogitsProcessor, Tensor};
use mistralrs_core::ResponseLogprob;

use super::{SeededSampler, TokenLogprob};

/// What the processor saw at one step: the chosen token and the most likely ones, with
/// natural-log probabilities.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Step {
    pub chosen: u32,
    pub chosen_logprob: f32,
    pub top: Vec<(u32, f32)>,
}

/// The steps recorded for one request, oldest first, shared by the processor (engine thread)
/// and the stream (our task).
pub(super) type Steps = Arc<Mutex<VecDeque<Step>>>;

/// Natural-log softmax of `logits`, computed stably; non-finite logits get `-inf`.
pub(super) fn log_softmax(logits: &[f32]) -> Vec<f32> {
    let max = logits
        .iter()
        .copied()
        .filter(|v| v.is_finite())
        .fold(f32::NEG_INFINITY, f32::max);
    if !max.is_finite() {
        return vec![f32::NEG_INFINITY; logits.len()];
    }
    let sum: f64 = logits
        .iter()
        .filter(|v| v.is_finite())
        .map(|&v| f64::from(v - max).exp())
        .sum();
    let lse = max as f64 + sum.ln();
    logits
        .iter()
        .map(|&v| {
            if v.is_finite() {
                (f64::from(v) - lse) as f32
            } else {
                f32::NEG_INFINITY
            }
        })
        .collect()
}

/// The `n` largest values with their indices, largest first (ties: lower index first).
pub(super) fn top_n(values: &[f32], n: usize) -> Vec<(u32, f32)> {
    let mut idx: Vec<u32> = (0..values.len() as u32).collect();
    let n = n.min(idx.len());
    if n == 0 {
        return Vec::new();
    }
    let key = |i: &u32| values[*i as usize];
    idx.select_nth_unstable_by(n - 1, |a, b| key(b).total_cmp(&key(a)).then(a.cmp(b)));
    idx.truncate(n);
    idx.sort_by(|a, b| key(b).total_cmp(&key(a)).then(a.cmp(b)));
    idx.into_iter().map(|i| (i, values[i as usize])).collect()
}

/// Index of the largest finite value (the engine's argmax choice; ties: lowest index).
fn argmax(values: &[f32]) -> usize {
    let mut best = 0;
    for (i, v) in values.iter().enumerate() {
        if *v > values[best] {
            best = i;
        }
    }
    best
}

/// Records every step's probabilities; when `sampler` is set, also draws the token (as
/// [`SeededProcessor`](super::SeededProcessor) does) but keeps the other logits in their
/// order, so the engine's own top-n list (which names the tokens) still lists the real
/// runners-up after the drawn one.
pub(super) struct ProbeProcessor {
    pub sampler: Option<SeededSampler>,
    pub n: usize,
    pub steps: Steps,
}

impl CustomLogitsProcessor for ProbeProcessor {
    fn apply(&self, logits: &Tensor, _context: &[u32]) -> mistralrs::Result<Tensor> {
        let mut values: Vec<f32> = logits.to_dtype(mistralrs::DType::F32)?.to_vec1()?;
        let lp = log_softmax(&values);
        let chosen = match &self.sampler {
            Some(s) => s.choose(&values),
            None => argmax(&values),
        };
        let step = Step {
            chosen: chosen as u32,
            chosen_logprob: lp.get(chosen).copied().unwrap_or(f32::NEG_INFINITY),
            // One more than asked: the drawn token may push one runner-up out of the
            // engine's list, whose names we use.
            top: top_n(&lp, self.n + 1),
        };
        if let Ok(mut q) = self.steps.lock() {
            q.push_back(step);
        }
        if self.sampler.is_none() {
            return Ok(logits.clone());
        }
        let max = values
            .iter()
            .copied()
            .filter(|v| v.is_finite())
            .fold(f32::NEG_INFINITY, f32::max);
        if let Some(v) = values.get_mut(chosen) {
            *v = if max.is_finite() { max + 1.0e4 } else { 0.0 };
        }
        Tensor::from_vec(values, lp.len(), logits.device())?.to_dtype(logits.dtype())
    }
}

/// The token of one engine chunk with our figures: the chunk names the tokens (its top list
/// is the engine's, by raw logits, the chosen token first), the matching step gives the
/// probabilities. Steps the engine sent no chunk for (e.g. the end-of-sequence token) are
/// skipped by id.
pub(super) fn pair(chunk: &ResponseLogprob, steps: &Steps, n: usize) -> Option<TokenLogprob> {
    let chosen_id = chunk.top_logprobs.first().map(|t| t.token);
    let step = {
        let mut q = steps.lock().ok()?;
        loop {
            let s = q.pop_front()?;
            if chosen_id.is_none_or(|id| id == s.chosen) {
                break s;
            }
        }
    };
    let top = chunk
        .top_logprobs
        .iter()
        .filter_map(|t| {
            let lp = step.top.iter().find(|(id, _)| *id == t.token)?.1;
            Some((t.bytes.clone().unwrap_or_default(), lp))
        })
        .take(n)
        .collect();
    Some(TokenLogprob::new(
        chunk.token.clone(),
        step.chosen_logprob,
        top,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_softmax_is_a_distribution_and_keeps_order() {
        let lp = log_softmax(&[2.0, -1.0, 0.5, f32::NEG_INFINITY]);
        let total: f64 = lp.iter().map(|v| f64::from(*v).exp()).sum();
        assert!((total - 1.0).abs() < 1e-6, "{total}");
        assert!(lp[0] > lp[2] && lp[2] > lp[1]);
        assert_eq!(lp[3], f32::NEG_INFINITY);
        // exact value: ln(e^2 / (e^2 + e^-1 + e^0.5))
        let want = (2f64.exp() / (2f64.exp() + (-1f64).exp() + 0.5f64.exp())).ln();
        assert!((f64::from(lp[0]) - want).abs() < 1e-6);
        assert!(log_softmax(&[f32::NAN, f32::NEG_INFINITY])
            .iter()
            .all(|v| *v == f32::NEG_INFINITY));
    }

    #[test]
    fn top_n_is_sorted_and_stable() {
        let v = [0.1, 0.9, 0.5, 0.9, -3.0];
        assert_eq!(top_n(&v, 3), vec![(1, 0.9), (3, 0.9), (2, 0.5)]);
        assert_eq!(top_n(&v, 0), vec![]);
        assert_eq!(top_n(&v, 10).len(), 5);
    }

    #[test]
    fn chunks_pair_with_their_steps_by_token_id() {
        let steps: Steps = Arc::default();
        let step = |chosen, lp| Step {
            chosen,
            chosen_logprob: lp,
            top: vec![(chosen, lp), (9, -3.0)],
        };
        steps
            .lock()
            .unwrap()
            .extend([step(4, -0.1), step(5, -0.2), step(6, -0.3)]);
        let chunk = |id: u32, text: &str| ResponseLogprob {
            token: text.into(),
            logprob: f32::NAN,
            bytes: None,
            top_logprobs: vec![
                mistralrs::TopLogprob {
                    token: id,
                    logprob: f32::NAN,
                    bytes: Some(text.into()),
                },
                mistralrs::TopLogprob {
                    token: 9,
                    logprob: f32::NAN,
                    bytes: Some("x".into()),
                },
            ],
        };
        let a = pair(&chunk(4, "a"), &steps, 5).unwrap();
        assert_eq!(a.text, "a");
        assert_eq!(a.logprob, -0.1);
        assert_eq!(
            a.top,
            vec![("a".to_string(), -0.1), ("x".to_string(), -3.0)]
        );
        // The step for token 5 had no chunk (say, end of sequence): skipped by id.
        let c = pair(&chunk(6, "c"), &steps, 1).unwrap();
        assert_eq!((c.logprob, c.top.len()), (-0.3, 1));
        assert!(pair(&chunk(7, "d"), &steps, 1).is_none());
    }
}
